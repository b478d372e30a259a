from pathlib import Path

import pytest
from train_clips import micro_model_config, write_dataset

from worldscape_ros.model.config import ModelConfig


@pytest.fixture
def micro_config() -> ModelConfig:
    return micro_model_config()


@pytest.fixture
def dataset_root(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / 'data', episodes=3, frames=6, height=32, width=48)
