"""Recording: the episode bag format (rosbag2 via rosbags) and the recorder's writer.

May import pipeline, params and vla_adapter_core; never rclpy, never nodes/.
"""
