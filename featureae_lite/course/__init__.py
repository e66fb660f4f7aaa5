"""The course: the notebooks' session, the notebook runner and its figure checks, sentences from
numbers, widgets, exercises and their checkers, the analysis helpers and the rendered site."""
