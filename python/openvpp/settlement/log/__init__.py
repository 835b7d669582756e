"""The settlement event log and the trace context carried through it."""
