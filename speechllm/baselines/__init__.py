"""Reference systems that speech-LLM results are compared with (not trained by speechllm)."""
