"""The outside world: MSSanté, DMP, webhooks, reminders, the outbox (no Flask here)."""
