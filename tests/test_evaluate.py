import numpy as np
import pytest

from facedist.evaluate import fold_accuracy, read_pairs


def test_read_pairs_in_lfw_format(tmp_path):
    (tmp_path / "pairs.txt").write_text("2\t1\nAna\t1\t2\nAna\t1\tBob\t3\nBob\t1\t3\nAna\t2\tCy\t1\n")
    folds, pairs = read_pairs(tmp_path / "pairs.txt")
    assert folds == 2 and pairs[0] == ("Ana/Ana_0001.jpg", "Ana/Ana_0002.jpg", True)
    assert pairs[1] == ("Ana/Ana_0001.jpg", "Bob/Bob_0003.jpg", False)
    (tmp_path / "bad.txt").write_text("2\t1\nAna\t1\t2\n")
    with pytest.raises(ValueError, match="expected 4 pairs"):
        read_pairs(tmp_path / "bad.txt")


def test_fold_accuracy_picks_the_threshold_on_the_other_folds(rng):
    same = np.tile(np.r_[np.ones(50, bool), np.zeros(50, bool)], 4)
    dist = np.where(same, rng.uniform(0.1, 0.4, 400), rng.uniform(0.5, 0.9, 400))
    accs, thresholds = fold_accuracy(dist, same, 4)
    assert accs == [1.0] * 4 and all(0.4 <= t <= 0.5 for t in thresholds)
    dist[:5] = 0.95  # five same-person pairs of fold 0 look different: only fold 0 pays
    accs, _ = fold_accuracy(dist, same, 4)
    assert accs[0] == 0.95 and accs[1:] == [1.0] * 3


@pytest.mark.slow
def test_eval_lfw_on_a_tree_of_links(tmp_path, capsys):
    """`facedist eval lfw DIR` where DIR/lfw holds symbolic links to photos elsewhere (albums
    that link to originals): evaluated by the paths under DIR."""
    from conftest import LABELED
    from facedist.cli import main

    photos = {"Ann": ["obama/obama_1.jpg", "obama/obama_2.jpg", "obama/obama_3.jpg"],
              "Bo": ["biden/biden_1.jpg", "biden/biden_2.jpg"],
              "Cy": ["kit_harington/kit_harington_1.jpg", "kit_harington/kit_harington_2.jpg"],
              "Di": ["rose_leslie/rose_leslie_1.jpg", "rose_leslie/rose_leslie_2.jpg"]}
    for name, files in photos.items():
        (tmp_path / "lfw" / name).mkdir(parents=True)
        for i, f in enumerate(files, 1):
            (tmp_path / "lfw" / name / f"{name}_{i:04d}.jpg").symlink_to(LABELED / "people" / f)
    (tmp_path / "pairs.txt").write_text("2\t2\nAnn\t1\t2\nBo\t1\t2\nAnn\t3\tCy\t1\nBo\t1\tDi\t2\n"
                                        "Cy\t1\t2\nDi\t1\t2\nCy\t2\tAnn\t1\nDi\t1\tBo\t2\n")
    import json

    figures = tmp_path / "lfw.json"
    code = main(["eval", "lfw", str(tmp_path), "--out", str(tmp_path / "out"), "--views", "1",
                 "--json-file", str(figures)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(figures.read_text())
    assert result["pairs"] == 8 and result["no_face"] == 0 and len(result["folds"]) == 2
