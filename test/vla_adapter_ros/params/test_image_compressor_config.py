"""The image compressor's config: cameras from the description, outputs on <topic>/compressed."""

import pytest

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.params.image_compressor_config import ImageCompressorConfig


def test_the_description_cameras_are_compressed_by_default():
    robot = load_robot_description('aloha')
    config = ImageCompressorConfig.from_dict({})
    assert [name for name, _, _ in config.cameras] == list(robot.cameras)
    for name, topic, output in config.cameras:
        assert topic == robot.camera_topic.format(camera=name)
        assert output == f'{topic}/compressed'
    assert config.jpeg_quality == 80 and config.output_reliability == 'best_effort'


@pytest.mark.parametrize(('values', 'message'), [
    ({'jpeg_quality': 0}, r'parameter jpeg_quality=0: must be within \[1, 100\]'),
    ({'camera_names': ['a', 'b'], 'camera_topics': ['/a']}, 'camera_topics=.*needs one topic'),
    ({'camera_names': ['a'], 'camera_topics': ['/a/compressed']},
     'camera_topics=.*must be raw Image topics'),
    ({'camera_names': ['a', 'a']}, 'camera_names=.*unique'),
    ({'output_reliability': 'sometimes'}, 'output_reliability'),
    ({'robot_description': 'ur5'}, 'ur5'),
])
def test_bad_settings_are_refused_in_one_line_naming_the_parameter(values, message):
    with pytest.raises(ValueError, match=message) as error:
        ImageCompressorConfig.from_dict(values)
    assert '\n' not in str(error.value)
