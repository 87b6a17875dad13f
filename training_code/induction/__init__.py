"""Induction: programs that explain a task's examples.

The grid DSL (``dsl``), the verified programs of ARC-AGI-1 training tasks and the task generators built
from them (``programs``), code as a task for the model (``code_tasks``), the restricted process that runs
model-written programs (``sandbox``) and the enumerative search over DSL programs (``program_search``, with
its steps in ``search_steps`` and its last moves in ``search_fitters`` and ``cell_rules``; ``run_search``).
The rest of ``training_code`` is the language-model pipeline and its presets.
"""
