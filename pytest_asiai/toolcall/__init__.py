"""Tool calls: scoring a streamed call, multi-turn conversations, the coding-agent tools, the thinking
ablation and instruction following.

``scoring`` (a call and a turn), ``core`` (conversations, budgets, playing turns), ``summary`` (the
percentages gates read), ``recovery``, ``tools`` (schemas and scenarios), ``ablation``, ``instruct``,
``lab`` (the ``toolcall`` fixture's object), ``gates``."""
