"""The workshop's exercises: each folder holds a task, a check that runs the project's real code, and
a reference solution (docs/workshop.md)."""
