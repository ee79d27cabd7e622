#!/bin/sh
# The main job on the demo model that ships in assets/demo: a feature
# visualization of every class, and of every channel of the first
# convolution, written into out/.
set -eu
build=${1:-build}
model=assets/demo/fashion_cnn.onnx
lucidvk="$build/lucidvk"
mkdir -p out

echo "== device"
"$lucidvk" devices
echo "== the demo model classifies its test images"
"$lucidvk" classify "$model" assets/demo/test_*.png --top 1
echo "== one image per class (class logits, 256 steps)"
objective=""
for k in 0 1 2 3 4 5 6 7 8 9; do
    objective="$objective${objective:+ + }class($k)@$k"
done
"$lucidvk" render "$model" --objective "$objective" --steps 256 --seed 1 \
    -o out/classes.png --out-dir out/classes --json out/classes.json
echo "== every channel of the first convolution (conv1_relu)"
"$lucidvk" render "$model" -l conv1_relu -c 0-31 --steps 256 --seed 1 \
    -o out/conv1.png --out-dir out/conv1 --json out/conv1.json
echo "== a mid-level layer (conv4_relu, 16 channels)"
"$lucidvk" render "$model" -l conv4_relu -c 0-15 --steps 256 --seed 1 \
    -o out/conv4.png --json out/conv4.json
echo
echo "Pictures: out/classes.png (one per class, in label order), out/conv1.png, out/conv4.png"
echo "For any ONNX model: $lucidvk render MODEL.onnx -l LAYER -c 0-7 -o render.png"
