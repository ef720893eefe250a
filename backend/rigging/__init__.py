"""Backend rigging helpers over the numpy-only core `keydiff3d_addon.rigcore` (skeleton, skinning,
bundle IO, presets): `mesh_tools` (exact inside test, keypoints moved inside, normals), `io`
(bundle reading/writing with JSON Schema validation and the GLB), `glb` (skinned glTF 2.0).

Kept light on purpose: importing `keydiff3d.rigging` loads numpy and nothing heavier. The command
`keydiff3d rig-mesh` is the pipeline's (keydiff3d.pipeline.mesh_cli): rigging never imports pipeline.
"""
