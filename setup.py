"""Installs vla_adapter_core (PyTorch model), vla_adapter_ros (ROS 2 nodes) and training tools."""

import glob

from setuptools import find_packages, setup

PACKAGE_NAME = 'vla_adapter_ros'

setup(
    name=PACKAGE_NAME,
    version='0.1.0',
    packages=find_packages(include=['vla_adapter_core*', 'vla_adapter_ros*', 'training*']),
    # The tokenizer the tiny policies and the demo recipe use travels with the package.
    package_data={'vla_adapter_core': ['assets/qwen2_5_tokenizer/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE_NAME}']),
        (f'share/{PACKAGE_NAME}', ['package.xml']),
        (f'share/{PACKAGE_NAME}/launch', glob.glob('launch/*.launch.py')),
        (f'share/{PACKAGE_NAME}/config', glob.glob('config/*.yaml') + glob.glob('config/*.xml')),
        (f'share/{PACKAGE_NAME}/config/robots', glob.glob('config/robots/*.yaml')),
        (f'share/{PACKAGE_NAME}/config/robots/arms', glob.glob('config/robots/arms/*.yaml')),
        (f'share/{PACKAGE_NAME}/config/lerobot', glob.glob('config/lerobot/*.yaml')),
        (f'share/{PACKAGE_NAME}/config/foxglove', glob.glob('config/foxglove/*.json')),
    ],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='vla_adapter_ros maintainers',
    maintainer_email='maintainers@vla-adapter-ros.dev',
    description='VLA-Adapter policies on ALOHA and Interbotix arms with ROS 2',
    license='MIT',
    entry_points={
        'console_scripts': [
            'vla-adapter-predict = vla_adapter_core.cli:main',
            'vla-adapter-train = training.finetune:main',
            'vla-adapter-stats = training.compute_dataset_statistics:main',
            'vla-adapter-bins = training.compute_adaptive_bins:main',
            'vla-adapter-compact-checkpoint = training.compact_checkpoint:main',
            'vla-adapter-inference = vla_adapter_ros.nodes.inference_node:main',
            'vla-adapter-executor = vla_adapter_ros.nodes.executor_node:main',
            'vla-adapter-sim-robot = vla_adapter_ros.nodes.sim_robot_node:main',
            'vla-adapter-demo = vla_adapter_ros.tools.showcase:main',
            'vla-adapter-record = vla_adapter_ros.nodes.recorder_node:main',
            'vla-adapter-export-hdf5 = training.export_hdf5:main',
            'vla-adapter-export-lerobot = training.export_lerobot:main',
            'vla-adapter-plot-training = training.plot_metrics:main',
            'vla-adapter-replay-eval = vla_adapter_ros.replay.replay_eval:main',
            'vla-adapter-play = vla_adapter_ros.nodes.bag_player_node:main',
            'vla-adapter-sim-demos = vla_adapter_ros.tools.scripted_demos:main',
            'vla-adapter-mujoco-sim = vla_adapter_ros.nodes.mujoco_sim_node:main',
            'vla-adapter-sim-eval = vla_adapter_ros.tools.sim_eval:main',
            'vla-adapter-sim-dagger = vla_adapter_ros.tools.sim_dagger:main',
            'vla-adapter-compress-images = vla_adapter_ros.nodes.image_compressor_node:main',
            'vla-adapter-preflight = vla_adapter_ros.tools.preflight_probe:main',
            'vla-adapter-record-session = vla_adapter_ros.tools.record_session:main',
            'vla-adapter-view = vla_adapter_ros.nodes.view_node:main',
        ],
    },
)
