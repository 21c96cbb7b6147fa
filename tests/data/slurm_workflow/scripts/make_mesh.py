"""Snakemake script: a unit cube cut into 2 x 6 tetrahedra as a magtwin mesh artefact."""
import numpy as np

from magtwin.io.mesh_artefact import MeshData, write_mesh_artefact

cube = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)], float)
# Kuhn triangulation of the unit cube (6 positively oriented tetrahedra along the diagonal 0-7).
tets = np.array([[0, 1, 3, 7], [0, 3, 2, 7], [0, 2, 6, 7], [0, 6, 4, 7], [0, 4, 5, 7], [0, 5, 1, 7]])
points = np.vstack([cube, cube + [1.0, 0, 0]])
tets = np.vstack([tets, tets + 8])
vol = np.einsum("ij,ij->i", np.cross(points[tets[:, 1]] - points[tets[:, 0]],
                                     points[tets[:, 2]] - points[tets[:, 0]]),
                points[tets[:, 3]] - points[tets[:, 0]])
tets[vol < 0] = tets[vol < 0][:, [0, 2, 1, 3]]
mesh = MeshData(points_nm=points, tetrahedra=tets, region_id=np.ones(len(tets), np.int32),
                regions=[{"id": 1, "kind": "grain", "grains": [1], "volume_nm3": 2.0}])
write_mesh_artefact(snakemake.output[0], mesh, parameters={"f": float(snakemake.params.f)})
