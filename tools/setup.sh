# shellcheck shell=bash
# Idempotent set-up, sourced by ./run.sh: system packages (Debian/Ubuntu, as root), a virtual
# environment that sees the system PETSc/petsc4py/mpi4py, and magtwin installed in it.
# A second run on a set-up machine only checks stamps and returns within seconds.

MAGTWIN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAGTWIN_VENV="${MAGTWIN_VENV:-$MAGTWIN_ROOT/.venv}"

# System packages: PETSc + petsc4py + mpi4py + Open MPI for the solver; SLURM + munge + PMIx
# for the real single-node cluster that the SLURM tests start.
MAGTWIN_APT_PACKAGES=(python3-venv python3-dev python3-petsc4py python3-mpi4py openmpi-bin
                      slurm-wlm munge libpmix-dev)

_magtwin_log() { printf '[magtwin setup] %s\n' "$*" >&2; }

_magtwin_missing_apt() {
    local p missing=()
    for p in "${MAGTWIN_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    echo "${missing[@]:-}"
}

_magtwin_system_packages() {
    command -v dpkg-query >/dev/null 2>&1 || return 0
    local missing
    missing="$(_magtwin_missing_apt)"
    [ -z "${missing// /}" ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        _magtwin_log "installing system packages: $missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        _magtwin_log "missing system packages: $missing"
        _magtwin_log "install them with: sudo apt-get install $missing"
        _magtwin_log "(or, without root, use the conda environments in envs/: envs/solver.yaml has PETSc)"
    fi
}

_magtwin_petsc_dir() {
    # Debian's petsc4py needs PETSC_DIR unless the -dev package made /usr/lib/petsc.
    if [ -z "${PETSC_DIR:-}" ] && [ ! -e /usr/lib/petsc ]; then
        local d
        for d in /usr/lib/petscdir/petsc3.*/*-real; do
            [ -d "$d" ] && export PETSC_DIR="$d"
        done
    fi
}

_magtwin_base_python() {
    # The interpreter whose site-packages hold petsc4py: Debian's /usr/bin/python3, or the
    # active (conda) python on a cluster.
    local p
    for p in /usr/bin/python3 python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c "import petsc4py, mpi4py" >/dev/null 2>&1; then
            command -v "$p"; return 0
        fi
    done
    return 1
}

_magtwin_venv() {
    local base stamp want
    if [ ! -x "$MAGTWIN_VENV/bin/python" ]; then
        if ! base="$(_magtwin_base_python)"; then
            _magtwin_log "ERROR: no Python with petsc4py and mpi4py found."
            _magtwin_log "On Debian/Ubuntu: sudo apt-get install ${MAGTWIN_APT_PACKAGES[*]}"
            _magtwin_log "Elsewhere: conda env create -f envs/solver.yaml && conda activate magtwin-solver"
            return 1
        fi
        _magtwin_log "creating virtual environment $MAGTWIN_VENV (from $base, with system site-packages)"
        "$base" -m venv --system-site-packages "$MAGTWIN_VENV"
    fi
    want="$(cat "$MAGTWIN_ROOT/pyproject.toml" "$MAGTWIN_ROOT/tools/constraints.txt" | sha256sum | cut -c1-16)"
    stamp="$(cat "$MAGTWIN_VENV/.magtwin-stamp" 2>/dev/null || true)"
    if [ "$stamp" != "$want" ]; then
        _magtwin_log "installing magtwin and its Python dependencies into $MAGTWIN_VENV"
        "$MAGTWIN_VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$MAGTWIN_VENV/bin/python" -m pip install -q -c "$MAGTWIN_ROOT/tools/constraints.txt" \
            -e "$MAGTWIN_ROOT[workflow,test]"
        echo "$want" > "$MAGTWIN_VENV/.magtwin-stamp"
    fi
}

magtwin_setup() {
    _magtwin_system_packages || return 1
    _magtwin_petsc_dir
    _magtwin_venv || return 1
    export PATH="$MAGTWIN_VENV/bin:$PATH"
    export VIRTUAL_ENV="$MAGTWIN_VENV"
    if [ "$(id -u)" = 0 ]; then
        # Open MPI refuses root unless told; containers and CI machines run as root.
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    fi
    # Tests and the 2-core default run more ranks than cores at times.
    export OMPI_MCA_rmaps_base_oversubscribe="${OMPI_MCA_rmaps_base_oversubscribe:-1}"
    # Open MPI busy-polls while waiting; with more ranks than free cores that starves the
    # other ranks (measured ~1.5x slower under load).
    export OMPI_MCA_mpi_yield_when_idle="${OMPI_MCA_mpi_yield_when_idle:-1}"
    # One BLAS thread per MPI rank: ranks are the parallelism.
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
    export MPLBACKEND="${MPLBACKEND:-Agg}"
}
