"""Definitions of third-party networks whose released weights the project loads (torch + diffusers only).

`sv3d_unet`: SV3D-p's spatio-temporal U-Net (diffusers' SVD U-Net with per-frame camera conditioning);
`sv3d_convert`: the mapping between its original SGM checkpoint keys and the diffusers layout.
They sit below both of their users: `keydiff3d.weights` (a file's key set is checked against the
network before any long work) and `keydiff3d.multiview.sv3d` (which loads and runs it).
"""
