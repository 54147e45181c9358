"""A toy solver: each rank sums its part of a vector."""
import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
part = np.arange(comm.rank * 1000, (comm.rank + 1) * 1000, dtype=np.float64)
total = comm.allreduce(part.sum(), op=MPI.SUM)
if comm.rank == 0:
    print(f"sum over {comm.size} ranks: {total}")
