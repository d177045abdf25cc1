"""``python -m speechllm.cli``: the ``speechllm`` command."""

from speechllm.cli import main

raise SystemExit(main())
