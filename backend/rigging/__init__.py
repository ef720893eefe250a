"""Rigging: skeleton from keypoints + adjacency, skinning, rig bundles, skinned GLB, `rig-mesh`.

Kept light on purpose: importing `keydiff3d.rigging` (or `.core`) loads numpy and nothing heavier.
Backend-only helpers live in `io` (jsonschema validation), `glb` (skinned glTF) and `cli`.
"""
