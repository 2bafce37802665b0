"""The engine: automations, the send pipeline and the dispatcher."""
