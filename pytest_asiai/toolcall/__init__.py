"""Tool calls: scoring a streamed call, multi-turn conversations, the coding-agent tools, the thinking
ablation and instruction following."""
