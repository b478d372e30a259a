"""The Fast DDS profile every WorldScape process uses: config/fastdds.xml. Fast DDS's default shared-memory
segment (512 KiB) starves large images across processes (a 640x480 rgb8 stream arrived at 2-3 Hz); the
profile's 16 MiB segment, with UDPv4 kept for other hosts, delivers them in full."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'


def fastdds_profile() -> Path | None:
    """config/fastdds.xml of a source checkout, else of the install (ament's share/worldscape_ros, or the Python
    prefix's share for a pip install); None when there is none."""
    source = Path(__file__).resolve().parents[2] / 'config' / 'fastdds.xml'
    if source.is_file():
        return source
    shares = []
    try:
        from ament_index_python.packages import get_package_share_directory

        shares.append(Path(get_package_share_directory('worldscape_ros')))
    except (ImportError, LookupError, OSError):  # no ament index (OSError: AMENT_PREFIX_PATH unset), or not in it
        pass
    shares.append(Path(sys.prefix) / 'share' / 'worldscape_ros')
    return next((p for p in (s / 'config' / 'fastdds.xml' for s in shares) if p.is_file()), None)


def use_fastdds_profile() -> str | None:
    """Point Fast DDS at the profile before rclpy starts, unless the environment names one already; returns the
    profile in effect (None: Fast DDS's defaults)."""
    profile = fastdds_profile()
    if profile is not None:
        os.environ.setdefault(PROFILE_VARIABLE, str(profile))
    return os.environ.get(PROFILE_VARIABLE)
