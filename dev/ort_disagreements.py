"""Where tract and the emoedge-core engine disagree, what does onnxruntime say?

Usage: PYTHONPATH=tools .venv/bin/python dev/ort_disagreements.py MODEL_DIR VERIFY_JSON
  VERIFY_JSON from `emoedge verify --model MODEL_DIR --json VERIFY_JSON`.
Prints, for every image whose tract and engine labels differ or whose logits differ by more
than 2 LSB, the labels of tract, the engine, onnxruntime and the ONNX reference evaluator
(onnx.reference: the spec, executed), and the last two's dequantized logits (ties show as equal
values; argmax then takes the first class). Needs numpy, onnx and onnxruntime only: the PNG
decoder in png_gray.py handles the 8-bit grayscale FER2013 files.
"""
import json, sys, numpy as np, onnxruntime as ort
from png_gray import png_gray
from ort_eval import CLASSES
r=json.load(open(sys.argv[2]))
d=[x for x in r['disagreements'] if x['tract']!=x['engine'] or x['max_lsb']>2]
s=ort.InferenceSession(sys.argv[1]+'/model.int8.onnx'); inp=s.get_inputs()[0]
from onnx.reference import ReferenceEvaluator
ref=ReferenceEvaluator(sys.argv[1]+'/model.int8.onnx')
names=CLASSES
for x in d:
    img=png_gray(x['path']).astype(np.float32)/255.0
    shape=[1 if not isinstance(v,int) else v for v in inp.shape]
    out=s.run(None,{inp.name:img.reshape(shape)})[0].ravel()
    spec=ref.run(None,{inp.name:img.reshape(shape)})[0].ravel()
    print('/'.join(x['path'].split('/')[-2:]),'tract',x['tract'],'engine',x['engine'],'ort',names[int(out.argmax())],'reference',names[int(spec.argmax())],'lsb',x['max_lsb'])
    print('  ort      ',np.round(out,3)); print('  reference',np.round(spec,3))
