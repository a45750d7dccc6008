import anndata as ad
import pytest

from scbranch.cli import main


def test_demo_writes_outputs(tmp_path, caplog):
    rc = main(["demo", "--out", str(tmp_path), "--max-steps", "150", "--n-per-type", "20", "--no-progress"])
    assert rc == 0
    assert (tmp_path / "pbmc68k_real_vs_synthetic.png").stat().st_size > 10_000
    both = ad.read_h5ad(tmp_path / "pbmc68k_real_and_synthetic.h5ad")
    assert both.n_obs == 700 + 10 * 20 and both.obs["scbranch_synthetic"].sum() == 200
    assert "generate" in both.uns["scbranch"] and (tmp_path / "model" / "model.pt").exists()


@pytest.mark.parametrize("name", ["01_quickstart", "02_cell_ontology_and_augmentation",
                                  "03_add_cell_type_and_transmute", "04_counts_through_scvi",
                                  "05_beyond_one_label"])
def test_tutorial_runs(tmp_path, monkeypatch, name):
    import runpy
    from pathlib import Path

    monkeypatch.setenv("SCBRANCH_TUTORIAL_STEPS", "100")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(Path(__file__).parents[1] / "tutorials" / f"{name}.py"))
    assert list(tmp_path.glob("figures/*.png")) or list(tmp_path.glob("*.png")), "the tutorial wrote no figure"


def test_fit_and_generate_commands(tmp_path, toy_adata):
    data = tmp_path / "toy.h5ad"
    toy_adata.write_h5ad(data)
    assert main(["fit", str(data), "--groupby", "cell_type", "--out", str(tmp_path / "m"), "--max-steps", "50",
                 "--no-progress"]) == 0
    assert (tmp_path / "m" / "hierarchy.png").exists() and (tmp_path / "m" / "branch_points.png").exists()
    assert main(["generate", str(tmp_path / "m"), "--n", "7", "--types", "A", "C", "--out", str(tmp_path / "s.h5ad"),
                 "--no-progress"]) == 0
    syn = ad.read_h5ad(tmp_path / "s.h5ad")
    assert syn.obs["cell_type"].value_counts().to_dict() == {"A": 7, "C": 7}
    assert list(syn.var_names) == list(toy_adata.var_names)


def test_help_and_version_are_fast_and_import_no_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom scbranch.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'scanpy' not in sys.modules, 'heavy imports for --version'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("scbranch 0.")


def test_fit_errors_are_one_line_and_checked_before_training(tmp_path, toy_adata, capsys):
    data = tmp_path / "toy.h5ad"
    toy_adata.write_h5ad(data)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    assert main(["fit", str(data), "--groupby", "cell_type", "--out", str(tmp_path / "taken"), "--max-steps", "50",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "exists and is not empty" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert (tmp_path / "taken" / "x").read_text() == "keep me"
    assert main(["fit", str(data), "--groupby", "celltype", "--out", str(tmp_path / "m"), "--no-progress"]) == 2
    assert "not a column of adata.obs" in capsys.readouterr().err


def test_fit_flags_quiet_after_the_subcommand_and_non_hdf5_input(tmp_path, toy_adata, capfd):
    data = tmp_path / "toy.h5ad"
    adata = toy_adata.copy()
    adata.obs["coarse"] = adata.obs["cell_type"].map({"A": "AB", "B": "AB", "C": "far"}).astype("category")
    adata.obs["donor"] = ["d1", "d2"] * (adata.n_obs // 2)
    adata.write_h5ad(data)
    # no --groupby (the API finds cell_type), levels as comma-separated columns, sharing, covariates, --quiet last
    assert main(["fit", str(data), "--out", str(tmp_path / "m"), "--max-steps", "40", "--hierarchy",
                 "coarse,cell_type", "--sharing", "0.3", "--condition-keys", "donor", "--quiet"]) == 0
    out, err = capfd.readouterr()
    assert out == "" and "training:" not in err  # quiet: no log, no bars (the groupby warning may remain)
    cfg = (tmp_path / "m" / "config.json").read_text()
    assert '"sharing": 0.3' in cfg and '"donor"' in cfg and '"coarse"' in cfg
    bad = tmp_path / "cells.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["fit", str(bad), "--out", str(tmp_path / "m2")]) == 2
    err = capfd.readouterr().err.strip()
    assert "not an .h5ad (HDF5) file" in err and len(err.splitlines()) == 1 and "Traceback" not in err
