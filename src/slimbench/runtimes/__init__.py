"""torch, ONNX Runtime and OpenVINO behind one interface; ONNX export and INT8 quantization."""
