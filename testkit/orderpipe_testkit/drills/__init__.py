"""Failure drills: each runs on the real local parts and reports sent/accepted/readable/DLQ/lost."""
