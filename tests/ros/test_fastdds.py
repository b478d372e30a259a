"""One lookup of the Fast DDS profile for every process: the shipped file, and a profile the user set wins."""

from pathlib import Path

from worldscape_ros.ros.fastdds import PROFILE_VARIABLE, fastdds_profile, use_fastdds_profile

REPO = Path(__file__).resolve().parents[2]


def test_a_source_checkout_finds_its_config_profile():
    assert fastdds_profile() == REPO / 'config' / 'fastdds.xml'


def test_the_profile_is_set_when_none_is(monkeypatch):
    monkeypatch.delenv(PROFILE_VARIABLE, raising=False)
    assert use_fastdds_profile() == str(REPO / 'config' / 'fastdds.xml')


def test_a_profile_the_environment_names_is_kept(monkeypatch, tmp_path):
    own = tmp_path / 'mine.xml'
    monkeypatch.setenv(PROFILE_VARIABLE, str(own))
    assert use_fastdds_profile() == str(own)
