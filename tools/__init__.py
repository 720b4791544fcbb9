"""Developer scripts; importable as a package by the tests (tools.testbed, tools.tflite_build)."""
