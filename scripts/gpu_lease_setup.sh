# Sourced by the gpu_lease_*.sh scripts, from the repository root of a lent CUDA machine that has torch but not
# MuJoCo: the carried wheels (.devkit/whl) into /tmp/site, the GL loaders (.devkit/gl) unpacked, EGL pointed at the
# NVIDIA driver, and a check that MuJoCo renders through it. Exits the caller with 3 (wheels) or 5 (EGL) on failure.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .devkit/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD MUJOCO_GL=egl
for f in .devkit/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
v=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json; [[ -f $v ]] && export __EGL_VENDOR_LIBRARY_FILENAMES=$v
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -c "import mujoco; c = mujoco.GLContext(64, 64); c.make_current(); print('mujoco egl ok')" || exit 5
