"""ChatML chat templates with `{% generation %}` markers around assistant content.

TRL's `assistant_only_loss` finds the trained tokens through those markers; the text rendered is the
plain ChatML of Qwen2.5, SmolLM2 and the tiny student, markers or not.
"""

from __future__ import annotations

import json


def chatml_template(default_system: str | None = None) -> str:
    """ChatML; with `default_system`, a system turn is written first when the conversation has none
    (as SmolLM2's and Qwen2.5's own templates do)."""
    system = ""
    if default_system is not None:
        turn = json.dumps(f"<|im_start|>system\n{default_system}<|im_end|>\n")  # a quoted Jinja string
        system = f"{{%- if loop.first and messages[0]['role'] != 'system' %}}{{{{- {turn} }}}}{{%- endif %}}"
    return (
        "{%- for message in messages %}"
        + system
        + "{{- '<|im_start|>' + message['role'] + '\\n' }}"
        "{%- if message['role'] == 'assistant' %}"
        "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
        "{%- else %}"
        "{{- message['content'] + '<|im_end|>\\n' }}"
        "{%- endif %}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )
