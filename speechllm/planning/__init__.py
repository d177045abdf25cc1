"""Planning a configuration without a GPU or weights: build it on ``meta``, count its parameters,
FLOPs and memory, and estimate its time and cost (``speechllm plan``)."""
