"""Subscriber callbacks that are never lost: the notifier decides what to send in the status change's
transaction (notifier.py), the dispatcher delivers it (dispatcher.py)."""
