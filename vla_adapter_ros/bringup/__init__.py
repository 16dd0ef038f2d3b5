"""Bringup: the launch description (nodes, parameters, arguments) and process groups.

Plain Python shared by the launch files and the tools; never rclpy, never nodes/ (nodes are
started as processes by their entry points).
"""
