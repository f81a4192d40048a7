"""``bulwark eval``: a task-specific evaluation set through the real chat pipeline, per tier."""
