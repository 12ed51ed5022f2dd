"""Codec specs: parsing, canonical text, checkpoint filling and per-process building."""

from __future__ import annotations

import pytest

from satflow.codecs.spec import CodecSpec, CodecSpecError, build_codec


@pytest.mark.parametrize("text, name, params", [
    ("lossless", "lossless", {}),
    ("sz3:tol=0.5", "sz3", {"tol": 0.5}),
    ("errorbound:inner=constant,eps=[0.5,1.0]", "errorbound", {"inner": "constant", "eps": [0.5, 1.0]}),
    ("errorbound:inner=sz3,inner_params={tol: 2, fill: mean},eps=0.5",
     "errorbound", {"inner": "sz3", "inner_params": {"tol": 2, "fill": "mean"}, "eps": 0.5}),
    (" bitround:keepbits=none ", "bitround", {"keepbits": None}),
    ("zfp:tol=1e-2", "zfp", {"tol": 0.01}),
])
def test_parse(text, name, params):
    spec = CodecSpec.parse(text)
    assert (spec.name, spec.params) == (name, params)
    assert CodecSpec.parse(str(spec)) == spec  # the canonical text reads back to the same spec


def test_a_mapping_from_a_config_file_is_a_spec():
    assert CodecSpec.parse({"name": "sz3", "params": {"tol": 1}}) == CodecSpec.parse("sz3:tol=1")
    with pytest.raises(CodecSpecError, match="a mapping needs 'name' and optional 'params'"):
        CodecSpec.parse({"codec": "sz3"})


def test_specs_compare_by_value_whatever_the_key_order():
    assert CodecSpec.parse("errorbound:eps=0.5,inner=constant") == CodecSpec.parse("errorbound:inner=constant,eps=0.5")
    assert str(CodecSpec.parse("errorbound:inner=constant,eps=0.5")) == "errorbound:eps=0.5,inner=constant"


@pytest.mark.parametrize("text, message", [
    ("sz3:tol", r"codec spec 'sz3:tol': 'tol' is not KEY=VALUE"),
    ("sz 3", r"codec spec 'sz 3': expected NAME or NAME:KEY=VALUE"),
    ("sz3:tol=[0.5", r"codec spec 'sz3:tol=\[0.5': value of 'tol' is not valid YAML"),
    ("sz3:=1", r"codec spec 'sz3:=1': '=1' is not KEY=VALUE"),
])
def test_malformed_specs_name_themselves(text, message):
    with pytest.raises(CodecSpecError, match=message):
        CodecSpec.parse(text)


def test_building_names_the_spec_and_caches_per_process():
    with pytest.raises(CodecSpecError, match=r"codec spec 'sz3:tol=0': sz3: tol must be"):
        build_codec(CodecSpec.parse("sz3:tol=0"))
    spec = CodecSpec.parse("sz3:tol=0.25")
    assert spec.build() is build_codec(CodecSpec.parse("sz3:tol=0.25"))  # one instance per process
    assert spec.build().params == {"tol": 0.25, "fill": "smooth"}


def test_checkpoint_is_filled_in_only_where_a_codec_needs_one():
    def built(text: str) -> dict:
        return CodecSpec.parse(text).with_checkpoint("ck").build_params()

    assert built("vaeformer:qstep=2") == {"qstep": 2, "checkpoint": "ck"}
    assert built("vaeformer:checkpoint=mine") == {"checkpoint": "mine"}
    assert built("errorbound:inner=vaeformer,inner_params={qstep: 4},eps=0.5")["inner_params"] == {
        "checkpoint": "ck", "qstep": 4}
    assert built("errorbound:inner=constant,eps=0.5,context=learned")["checkpoint"] == "ck"
    assert built("sz3:tol=1") == {"tol": 1}
    assert "checkpoint" not in built("errorbound:inner=constant,eps=0.5")


def test_run_level_resources_stay_out_of_the_spec_text():
    spec = CodecSpec.parse("vaeformer:qstep=1").with_checkpoint("/long/path/ck").with_device("auto")
    assert str(spec) == "vaeformer:qstep=1" and spec.folder == "vaeformer-qstep=1"
    assert spec.build_params() == {"qstep": 1, "checkpoint": "/long/path/ck", "device": "auto"}
    assert spec != CodecSpec.parse("vaeformer:qstep=1")  # built differently, so cached apart


def test_only_networks_move_to_a_device():
    assert CodecSpec.parse("vaeformer").with_device("auto").build_params() == {"device": "auto"}
    spec = CodecSpec.parse("errorbound:inner=vaeformer,eps=0.5").with_device("cuda")
    assert spec.build_params()["inner_params"] == {"device": "cuda"}
    assert CodecSpec.parse("sz3:tol=1").with_device("cuda").build_params() == {"tol": 1}
    assert CodecSpec.parse("vaeformer").is_learned and not CodecSpec.parse("sz3:tol=1").is_learned


def test_folder_names_are_safe_and_unique():
    assert CodecSpec.parse("sz3:tol=0.5").folder == "sz3-tol=0.5"
    assert "/" not in CodecSpec.parse("vaeformer:checkpoint=/a/b").folder
    long_a = CodecSpec.parse("sz3:tol=[" + ",".join(["0.5"] * 40) + "]")
    long_b = CodecSpec.parse("sz3:tol=[" + ",".join(["0.5"] * 41) + "]")
    assert len(long_a.folder) <= 80 and long_a.folder != long_b.folder


@pytest.mark.parametrize("text, message", [
    ("nosuch", r"^codec spec 'nosuch': unknown codec 'nosuch'; registered codecs: bitround, constant, errorbound"),
    ("sz3:tol=-1", r"^codec spec 'sz3:tol=-1': codec 'sz3': parameter 'tol' = -1 is invalid: input should be greater"),
    ("errorbound:inner=nosuch,eps=1", r"^codec spec 'errorbound:eps=1,inner=nosuch': unknown codec 'nosuch'"),
    ("errorbound:inner=constant,eps=1,context=deep", r"parameter 'context' = 'deep' is invalid: input should be "
                                                     r"'causal', 'learned' or 'none'"),
    ("vaeformer:qstep=2", r"^codec spec 'vaeformer:qstep=2': codec 'vaeformer' needs parameter 'checkpoint'"),
])
def test_checking_a_spec_names_it(text, message):
    with pytest.raises(CodecSpecError, match=message):
        CodecSpec.parse(text).check()


def test_checking_a_learned_spec_loads_no_checkpoint(tmp_path):
    spec = CodecSpec.parse("vaeformer:qstep=2").with_checkpoint(str(tmp_path / "absent"))
    assert spec.check() is spec  # only the schema is asked; building reads the checkpoint and fails
    with pytest.raises(CodecSpecError, match=r"codec spec 'vaeformer:qstep=2': "):
        build_codec(spec)
    assert CodecSpec.parse("errorbound:inner=vaeformer,eps=0.5").is_learned
    assert not CodecSpec.parse("errorbound:inner=sz3,eps=0.5,context=learned").is_learned


def test_a_spec_names_the_checkpoints_its_codec_is_built_with():
    assert CodecSpec.parse("errorbound:inner=vaeformer,eps=0.5").with_checkpoint("ck").checkpoint_paths() == ["ck"]
    learned_context = CodecSpec.parse("errorbound:inner=constant,eps=0.5,context=learned").with_checkpoint("c2")
    assert learned_context.checkpoint_paths() == ["c2"]
    assert CodecSpec.parse("sz3:tol=1").with_checkpoint("ck").checkpoint_paths() == []
