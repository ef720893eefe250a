"""Read an FBX file with ufbx (the FBX reader Godot uses; not Blender) and print what the engine tests
check, as JSON. Runs as its own process: ufbx and the bpy module crash when loaded in one process.

    python tests/fbx_reader.py FILE.fbx  ->  {"settings", "nodes", "meshes", "poses"}

Matrices are 4x4 row-major lists in the file's own axes and units (no conversion asked of ufbx).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def _matrix(m) -> list[list[float]]:
    out = np.eye(4)
    for column, vector in enumerate((m.c0, m.c1, m.c2, m.c3)):
        out[:3, column] = (vector.x, vector.y, vector.z)
    return out.tolist()


def read(path: str) -> dict:
    import ufbx

    scene = ufbx.load_file(path)
    alive = [scene]  # the binding frees an element when its wrapper dies: keep every wrapper referenced

    def hold(element):
        alive.append(element)
        return element

    nodes = []

    def walk(node, parent: str | None) -> None:
        for child in hold(node).children:
            hold(child)
            local = hold(child.local_transform)
            nodes.append(
                {
                    "name": child.name,
                    "parent": parent,
                    "type": child.attrib_type.name,
                    "translation": [local.translation.x, local.translation.y, local.translation.z],
                    "rotation": [local.rotation.x, local.rotation.y, local.rotation.z, local.rotation.w],
                    "scale": [local.scale.x, local.scale.y, local.scale.z],
                    "node_to_world": _matrix(hold(child.node_to_world)),
                }
            )
            walk(child, child.name)

    walk(scene.root_node, None)
    meshes = []
    for mesh in hold(scene.meshes):
        hold(mesh)
        positions = np.array([[p.x, p.y, p.z] for p in hold(mesh.vertex_position.values)])
        instance = hold(hold(mesh.instances)[0])
        world = np.array(_matrix(hold(instance.geometry_to_world)))
        skins = []
        for skin in hold(mesh.skin_deformers):
            hold(skin)
            clusters = []
            for cluster in hold(skin.clusters):
                hold(cluster)
                bone = hold(cluster.bone_node)
                clusters.append(
                    {
                        "name": cluster.name,
                        "bone": bone.name,
                        "num_weights": cluster.num_weights,
                        "bind_to_world": _matrix(hold(cluster.bind_to_world)),
                    }
                )
            weights = [w.weight for w in hold(skin.weights)]
            vertices = [hold(v) for v in hold(skin.vertices)]
            skins.append(
                {
                    "clusters": clusters,
                    "influences": [v.num_weights for v in vertices],
                    "weight_sums": [
                        float(sum(weights[v.weight_begin : v.weight_begin + v.num_weights])) for v in vertices
                    ],
                    "max_weights_per_vertex": skin.max_weights_per_vertex,
                }
            )
        meshes.append(
            {
                "name": mesh.name,
                "node": instance.name,
                "world_positions": (positions @ world[:3, :3].T + world[:3, 3]).tolist(),
                "skins": skins,
            }
        )
    poses = []
    for pose in hold(scene.poses):
        bones = [hold(bp) for bp in hold(hold(pose).bone_poses)]
        poses.append(
            {
                "bind_pose": pose.is_bind_pose,
                "bones": [
                    {"node": hold(bp.bone_node).name, "bone_to_world": _matrix(hold(bp.bone_to_world))} for bp in bones
                ],
            }
        )
    settings = hold(scene.settings)
    axes = hold(settings.axes)
    return {
        "settings": {
            "right": axes.right.name,
            "up": axes.up.name,
            "front": axes.front.name,
            "unit_meters": settings.unit_meters,
        },
        "nodes": nodes,
        "meshes": meshes,
        "poses": poses,
    }


def read_fbx(path: Path) -> dict:
    """`read(path)` in a separate Python process (see the module docstring)."""
    result = subprocess.run([sys.executable, __file__, str(path)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"ufbx could not read {path}: {result.stderr[-2000:]}")
    return json.loads(result.stdout)


if __name__ == "__main__":
    json.dump(read(sys.argv[1]), sys.stdout)
