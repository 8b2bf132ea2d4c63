"""The suite config and the command line options: strict parsing, one clear line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimbench.config.options import SuiteOptions, build_config
from slimbench.config.overrides import Overrides, apply_overrides, parse_variant_arg
from slimbench.config.suite import Settings, Thresholds, load_config
from slimbench.config.values import parse_devices, parse_int_list
from slimbench.core.errors import SlimbenchError
from slimbench.core.gates import violation

SHA = "ab" * 32

GOOD = f"""
reference = "original"

[settings]
imgsz = 320
batch = [1, 4]
device = "cpu,cuda"
images = ["images/scene.jpg", "/abs/other.png"]
conf = 0.3
speed_pairs = 9

[variants.pruned]
path = "models/pruned.pt"

[variants.original]
path = "models/original.pt"
sha256 = "{SHA.upper()}"

[thresholds.pruned]
max_params = 1200000
max_params_ratio = 0.45
min_channels_removed_pct = 40
max_zeroed_channels = 0
max_speed_ratio = 0.8
"""


def write(tmp_path: Path, text: str, name: str = "suite.toml") -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def test_good_config(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.reference == "original"
    assert list(cfg.variants) == ["original", "pruned"], "reference first"
    ref, pruned = cfg.variants["original"], cfg.variants["pruned"]
    assert ref.is_reference and ref.role == "reference" and not pruned.is_reference
    assert ref.path == tmp_path / "models/original.pt", "paths are relative to the TOML file"
    assert ref.sha256 == SHA and pruned.sha256 is None
    s = cfg.settings
    assert (s.imgsz, s.batch, s.device, s.conf, s.speed_pairs) == (320, (1, 4), ("cpu", "cuda"), 0.3, 9)
    assert s.images == (tmp_path / "images/scene.jpg", Path("/abs/other.png"))
    assert s.iou == Settings().iou, "unset settings keep their defaults"
    lim = cfg.limits("pruned")
    assert lim.max_params == 1_200_000 and lim.max_params_ratio == 0.45 and lim.max_zeroed_channels == 0
    assert cfg.limits("original") == Thresholds() and cfg.limits("original").is_empty()
    assert [v.name for v in cfg.candidates] == ["pruned"]


def test_speed_pairs_are_the_first_look_and_old_configs_still_hold(tmp_path):
    """speed_pairs: the speed gate's first look (9 by default), speed_pairs_max its cap (61); a config written when
    speed_pairs meant every pair (21, or more than the default cap) still loads and still gates."""
    from slimbench.bench.checks import pair_schedule

    base = 'reference = "a"\n[variants.a]\npath = "a.pt"\n'
    assert (Settings().speed_pairs, Settings().speed_pairs_max) == (9, 61)
    for pairs, first, most in ((21, 21, 61), (100, 100, 100)):
        s = load_config(write(tmp_path, base + f"[settings]\nspeed_pairs = {pairs}\n")).settings
        session = type("S", (), {"settings": s})()
        schedule = pair_schedule(session)
        assert (schedule.initial, schedule.most) == (first, most)
    s = load_config(write(tmp_path, base + "[settings]\nspeed_pairs = 11\nspeed_pairs_max = 11\n")).settings
    assert (s.speed_pairs, s.speed_pairs_max) == (11, 11), "a cap equal to the first look: one look only"


def test_bundled_default_config_parses():
    cfg = load_config(Path(__file__).parents[1] / "fixtures" / "slimbench.toml")
    assert cfg.reference == "original" and set(cfg.variants) == {"original", "pruned", "finetuned"}
    assert cfg.settings.imgsz == 640 and cfg.settings.batch == (1, 8)
    assert cfg.settings.images[0].name == "scene.jpg"
    assert (cfg.settings.speed_pairs, cfg.settings.speed_pairs_max) == (9, 61)
    pruned = cfg.limits("pruned")  # the pruned variant has shape limits and an accuracy gate of its own
    assert pruned.max_params_ratio is not None and pruned.max_map50_95_drop is not None
    assert cfg.limits("original").max_params_ratio is None  # the reference is not gated against itself


@pytest.mark.parametrize(
    "text, expected",
    [
        ('reference = "a"\n[variants.a\npath = "x.pt"', "malformed TOML"),
        ('reference = "a"\ncolour = 1\n[variants.a]\npath = "a.pt"', "colour: unknown key"),
        ('[variants.a]\npath = "a.pt"', "reference: missing"),
        ('reference = 3\n[variants.a]\npath = "a.pt"', "reference: expected a variant name"),
        ('reference = "b"\n[variants.a]\npath = "a.pt"', "reference: 'b' is not a variant"),
        ('reference = "a"', "variants: no variants defined"),
        ('reference = "a"\n[variants.a]\nfile = "a.pt"', "variants.a.file: unknown key"),
        ('reference = "a"\n[variants.a]\nsha256 = "' + SHA + '"', "variants.a.path: missing"),
        ('reference = "a"\n[variants.a]\npath = 5', "variants.a.path: expected a non-empty string"),
        ('reference = "a"\n[variants.a]\npath = "a.pt"\nsha256 = "xyz"', "variants.a.sha256: expected 64 hex"),
        ('reference = "a"\n[variants."a b"]\npath = "a.pt"', "variant names are"),
        ('reference = "a"\n[variants.a]\npath = "a.pt"\n[settings]\nimgsz = "640"', "settings.imgsz: expected an int"),
        ('reference = "a"\n[variants.a]\npath = "a.pt"\n[settings]\nimgsz = 100', "multiple of 32"),
        ('reference = "a"\n[variants.a]\npath = "a.pt"\n[settings]\nbatch = [1, 0]', "settings.batch: expected an int"),
        ('reference = "a"\n[variants.a]\npath = "a.pt"\n[settings]\nbatch = [true]', "settings.batch"),
        ('reference = "a"\n[variants.a]\npath = "a.pt"\n[settings]\nconf = 2', "settings.conf: expected a number"),
        ('reference = "a"\n[variants.a]\npath = "a.pt"\n[settings]\ndevice = ["tpu"]', "unknown device 'tpu'"),
        ('reference = "a"\n[variants.a]\npath = "a.pt"\n[settings]\nimgs = ["x.jpg"]', "settings.imgs: unknown"),
        ('reference = "a"\nsettings = 3\n[variants.a]\npath = "a.pt"', "settings: expected a table"),
        ('reference = "a"\n[variants.a]\npath = "a.pt"\n[settings]\nhalf = 1', "settings.half: expected true or false"),
        ('reference = "a"\n[variants.a]\npath = "a.pt"\n[thresholds.b]\nmax_params = 1', "thresholds.b: 'b' is not"),
        (
            'reference = "a"\n[variants.a]\npath = "a.pt"\n[thresholds.a]\nmax_param = 1',
            "thresholds.a.max_param: unknown key",
        ),
        (
            'reference = "a"\n[variants.a]\npath = "a.pt"\n[thresholds.a]\nmax_params = 1.5',
            "thresholds.a.max_params: expected an integer",
        ),
        (
            'reference = "a"\n[variants.a]\npath = "a.pt"\n[thresholds.a]\nmax_speed_ratio = "fast"',
            "thresholds.a.max_speed_ratio: expected a number",
        ),
        (
            'reference = "a"\n[variants.a]\npath = "a.pt"\n[thresholds.a]\nmin_agreement_recall = -1',
            "expected a number >= 0",
        ),
        (
            'reference = "a"\n[variants.a]\npath = "a.pt"\n[settings]\nspeed_pairs = 21\nspeed_pairs_max = 15',
            "settings.speed_pairs_max: 15 is below settings.speed_pairs",
        ),
        ('reference = "a"\n[variants.a]\npath = "a.pt"\n[settings]\nspeed_pairs_max = 0', "settings.speed_pairs_max"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, text, expected):
    p = write(tmp_path, text)
    with pytest.raises(SlimbenchError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and expected in msg
    assert "\n" not in msg


def test_missing_and_non_utf8_config(tmp_path):
    with pytest.raises(SlimbenchError, match="variants file not found"):
        load_config(tmp_path / "nope.toml")
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(SlimbenchError, match="not UTF-8"):
        load_config(p)


def test_parse_variant_arg():
    assert parse_variant_arg("pruned=models/p.pt") == ("pruned", "models/p.pt")
    assert parse_variant_arg(" x = a=b.pt ") == ("x", "a=b.pt")
    for bad in ["pruned", "=a.pt", "pruned=", "a b=c.pt"]:
        with pytest.raises(SlimbenchError, match="--variant"):
            parse_variant_arg(bad)


def test_parse_lists():
    assert parse_int_list("1,8", "--batch") == (1, 8)
    assert parse_int_list(" 8 , 1 ,8", "--batch") == (8, 1), "order kept, duplicates dropped"
    for bad in ["", "1,,8", "0", "-1", "1.5", "one"]:
        with pytest.raises(SlimbenchError, match="--batch"):
            parse_int_list(bad, "--batch")
    assert parse_devices("CPU, cuda:1") == ("cpu", "cuda:1")
    for bad in ["", "cpu,", "gpu"]:
        with pytest.raises(SlimbenchError, match="--device"):
            parse_devices(bad)


def test_overrides_merge_over_file(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    ov = Overrides(
        variants=("original=other/orig.pt", "extra=/abs/extra.pt"),
        reference="pruned",
        device="cpu",
        batch="2",
        imgsz=160,
        images=("a.jpg",),
    )
    out = apply_overrides(cfg, ov, cwd=tmp_path / "cwd")
    assert list(out.variants) == ["pruned", "original", "extra"]
    assert out.reference == "pruned" and out.variants["pruned"].is_reference
    assert out.variants["original"].path == tmp_path / "cwd/other/orig.pt", "CLI paths are relative to the cwd"
    assert out.variants["original"].sha256 is None, "a replaced checkpoint drops the old file's pin"
    assert out.variants["extra"].role == "candidate"
    s = out.settings
    assert (s.device, s.batch, s.imgsz, s.images) == (("cpu",), (2,), 160, (tmp_path / "cwd/a.jpg",))
    assert s.conf == 0.3, "settings not overridden stay"
    assert out.limits("pruned").max_params == 1_200_000


def test_overrides_errors(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    with pytest.raises(SlimbenchError, match=r"^--reference 'nope': unknown variant \(variants: original, pruned\)"):
        apply_overrides(cfg, Overrides(reference="nope"))
    with pytest.raises(SlimbenchError, match="--imgsz: 33 is not a positive multiple of 32"):
        apply_overrides(cfg, Overrides(imgsz=33))
    with pytest.raises(SlimbenchError, match="--batch"):
        apply_overrides(cfg, Overrides(batch="1,x"))
    with pytest.raises(SlimbenchError, match="no variants"):
        apply_overrides(None, Overrides())


def test_variants_from_command_line_alone(tmp_path):
    out = apply_overrides(None, Overrides(variants=("a=a.pt", "b=b.pt")), cwd=tmp_path)
    assert out.reference == "a" and [v.name for v in out.candidates] == ["b"]
    assert out.settings == Settings() and out.source is None


def test_build_config_default_file(tmp_path):
    opts = SuiteOptions(default_variants_file="fixtures/slimbench.toml")
    with pytest.raises(SlimbenchError, match="default variants file not found"):
        build_config(opts, rootdir=tmp_path, cwd=tmp_path)
    only_cli = SuiteOptions(default_variants_file="fixtures/slimbench.toml", overrides=Overrides(variants=("a=a.pt",)))
    assert build_config(only_cli, rootdir=tmp_path, cwd=tmp_path).reference == "a"
    write(tmp_path, GOOD, "fixtures/slimbench.toml")
    assert build_config(opts, rootdir=tmp_path, cwd=tmp_path / "elsewhere").reference == "original"
    alone = build_config(only_cli, rootdir=tmp_path, cwd=tmp_path)  # the default file exists, but --variant is given
    assert list(alone.variants) == ["a"] and alone.source is None and alone.thresholds == {}
    explicit = SuiteOptions(variants_file="fixtures/slimbench.toml", default_variants_file="ignored.toml")
    assert build_config(explicit, rootdir=tmp_path / "x", cwd=tmp_path).reference == "original"


def test_a_named_config_is_read_with_variants_on_the_command_line(tmp_path):
    """--variants-file, or the suite conftest's slimbench_config, is a named config: --variant merges over it."""
    toml = write(tmp_path, GOOD, "suite/slimbench.toml")
    for opts in (
        SuiteOptions(variants_file=str(toml), overrides=Overrides(variants=("extra=x.pt",))),
        SuiteOptions(suite_config=str(toml), overrides=Overrides(variants=("extra=x.pt",))),
    ):
        cfg = build_config(opts, rootdir=tmp_path / "root", cwd=tmp_path)
        assert list(cfg.variants) == ["original", "pruned", "extra"] and cfg.source == toml
        assert cfg.limits("pruned").max_params == 1_200_000, "an added variant leaves the others' limits alone"
        assert cfg.replaced == () and cfg.unlimited == {}


def test_replacing_a_checkpoint_drops_its_limits_and_pin(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    out = apply_overrides(cfg, Overrides(variants=("pruned=mine.pt",)), cwd=tmp_path)
    assert out.variants["pruned"].path == tmp_path / "mine.pt" and out.variants["pruned"].sha256 is None
    assert out.limits("pruned").is_empty(), "the limits were written for the old file"
    assert out.replaced == ("pruned",) and out.is_replaced("pruned") and not out.is_replaced("original")
    assert out.unlimited == {"pruned": "checkpoint replaced on the command line; limits from suite.toml not applied"}
    assert out.variants["original"].sha256 == SHA, "the other variants keep their pins"


def test_replacing_the_reference_drops_every_candidates_limits(tmp_path):
    """Every candidate's limits were set against the old reference (ratios, drops, agreement)."""
    cfg = load_config(write(tmp_path, GOOD))
    out = apply_overrides(cfg, Overrides(variants=("original=mine.pt",)), cwd=tmp_path)
    assert out.variants["original"].sha256 is None and out.limits("pruned").is_empty()
    assert out.unlimited["pruned"] == "reference replaced on the command line; limits from suite.toml not applied"
    assert out.replaced == ("original",)


def test_violation_messages():
    assert violation("pruned", "params", 1_000, None, "max") is None, "no limit, no gate"
    assert violation("pruned", "params", 1_000, 1_000, "max") is None, "limits are inclusive"
    msg = violation("pruned", "params", 1_234_567, 1_200_000, "max", "{:,.0f}")
    assert msg == "pruned: params 1,234,567 > max 1,200,000"
    msg = violation("ft on scene", "agreement recall", 0.5, 0.7, "min", "{:.2f}", note="5 of 10 found")
    assert msg == "ft on scene: agreement recall 0.50 < min 0.70 (5 of 10 found)"
    assert violation("x", "speed ratio", None, 0.8, "max") == "x: speed ratio not measured, max 0.8"
