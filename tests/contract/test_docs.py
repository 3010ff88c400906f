"""docs/contracts.md stays in step with the models: every field of every model is documented."""

from __future__ import annotations

from pathlib import Path

from gate.contract import SliLibrary
from gate.contract.reference import BEGIN, END, documented_models, field_reference

DOC = (Path(__file__).resolve().parents[2] / "docs" / "contracts.md").read_text()


def test_field_reference_is_current() -> None:
    start, end = DOC.index(BEGIN), DOC.index(END) + len(END)
    assert DOC[start:end] == field_reference(), (
        "docs/contracts.md is out of date: regenerate the field reference with "
        "`python -c 'from gate.contract.reference import field_reference; print(field_reference())'`"
    )


def test_every_field_of_every_model_appears_in_its_section() -> None:
    for model in documented_models():
        heading = f"### {model.__name__}\n"
        assert heading in DOC, model.__name__
        section = DOC.split(heading, 1)[1].split("\n### ", 1)[0]
        for name, info in model.model_fields.items():
            assert f"| `{info.alias or name}` |" in section, f"{model.__name__}.{name}"


def test_every_library_template_is_named_in_the_doc() -> None:
    for name in SliLibrary.default().names():
        assert f"`{name}`" in DOC, name
