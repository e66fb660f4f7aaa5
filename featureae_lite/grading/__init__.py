"""Classroom grading: student versions of the notebooks, grading of submissions in a sandbox, the
channel between the grader and the sandboxed worker, and grade reports."""
