"""Answer ARC tasks with the program search alone (no model); the command lives in ``induction.run_search``.

    python -m training_code.run_search --challenges input/arc-agi_evaluation_challenges.json \\
        --output output/search --seconds 10 [--workers 2] [--help]
"""

from .induction.run_search import main

if __name__ == "__main__":
    raise SystemExit(main())
