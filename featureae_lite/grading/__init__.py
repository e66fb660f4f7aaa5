"""Classroom grading: student versions of the notebooks, grading of submissions in a sandbox, the
channel between the grader and the sandboxed worker, and grade reports.

Modules, each with one job (imports flow down this list's dependencies, never in a cycle)::

    authoring     student versions (``assignments make``) and a submission's assembled notebook
    assignments   grading of submissions (``assignments grade``): verdicts of the checkers, run here
    report        the messages of a grade report (errors, limits), its file, its table
    notebook_run  the optional papermill run of the assembled notebook (``--run-notebook``)
    remote        the learner's functions called in a sandboxed worker: both ends of the channel
    wire          values and headers on that channel (torch.save / JSON bytes, never pickles)
    sandbox       Sandbox: a contained run (own folder and home, scrubbed environment, bubblewrap)
    limits        Limits of a run, and the pids cgroup that bounds its processes as root
    wrapper       the wrapper process of a run: applies the limits, runs it, kills what is left
"""
