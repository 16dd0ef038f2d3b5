"""Tools: command-line programs that start the nodes as processes and talk to them.

Sim evaluation, scripted demonstrations, the `make demo` showcase. May import rclpy and every
room except nodes/ (they reach nodes over DDS only).
"""
