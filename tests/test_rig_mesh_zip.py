"""`keydiff3d rig-mesh --zip` prints the path of the zip it wrote (scripts pick it up from stdout)."""

from __future__ import annotations

import json
import zipfile

from bpy_fixtures import CREATURE_ADJACENCY, CREATURE_KEYPOINTS, creature_mesh

from keydiff3d.cli import main
from keydiff3d_addon.rigcore import write_ply


def test_rig_mesh_zip_prints_the_zip_path(tmp_path, capsys):
    vertices, faces, colors = creature_mesh(1)
    write_ply(tmp_path / "creature.ply", vertices, faces, colors)
    (tmp_path / "kp.json").write_text(
        json.dumps({"keypoints": CREATURE_KEYPOINTS.tolist(), "adjacency": CREATURE_ADJACENCY.tolist()})
    )
    out = tmp_path / "rig.v2"  # a dot in the name: the zip is rig.v2.zip beside it, not rig.zip
    assert (
        main(
            [
                "rig-mesh",
                str(tmp_path / "creature.ply"),
                "--keypoints",
                str(tmp_path / "kp.json"),
                "--out",
                str(out),
                "--zip",
            ]
        )
        == 0
    )
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wrote ")]
    assert printed == [f"wrote {tmp_path / 'rig.v2.zip'}", f"wrote {out / 'rig.json'}"]
    with zipfile.ZipFile(tmp_path / "rig.v2.zip") as archive:
        assert {"rig.json", "mesh.ply", "skin.npz"} <= set(archive.namelist())
