"""Job bookkeeping (service), following backends (monitor) and telling subscribers (notifier)."""
