"""Where tract and the emoedge-core engine disagree, what does onnxruntime say?

Usage: .venv/bin/python tools/ort_disagreements.py MODEL_DIR VERIFY_JSON
  VERIFY_JSON from `emoedge verify --model MODEL_DIR --json VERIFY_JSON`.
Prints, for every image whose tract and engine labels differ or whose logits differ by more
than 2 LSB, the labels of tract, the engine, onnxruntime and the ONNX reference evaluator
(onnx.reference: the spec, executed), and the last two's dequantized logits (ties show as equal
values; argmax then takes the first class). Needs numpy, onnx and onnxruntime only: the PNG
decoder below handles the 8-bit grayscale FER2013 files.
"""
import json, struct, zlib, sys, numpy as np, onnxruntime as ort
def png_gray(path):
    b=open(path,'rb').read(); assert b[:8]==b'\x89PNG\r\n\x1a\n'
    i=8; idat=b''; w=h=None
    while i<len(b):
        n=struct.unpack('>I',b[i:i+4])[0]; t=b[i+4:i+8]; c=b[i+8:i+8+n]; i+=12+n
        if t==b'IHDR':
            w,h,bd,ct=struct.unpack('>IIBB',c[:10]); assert bd==8 and ct==0, (bd,ct)
        elif t==b'IDAT': idat+=c
    raw=zlib.decompress(idat); out=np.zeros((h,w),np.int32); prev=np.zeros(w,np.int32)
    for y in range(h):
        f=raw[y*(w+1)]; line=np.frombuffer(raw[y*(w+1)+1:(y+1)*(w+1)],np.uint8).astype(np.int32); cur=np.zeros(w,np.int32)
        for x in range(w):
            a=cur[x-1] if x else 0; up=prev[x]; c=prev[x-1] if x else 0
            if f==0: p=0
            elif f==1: p=a
            elif f==2: p=up
            elif f==3: p=(a+up)//2
            else:
                pa,pb,pc=abs(up-c),abs(a-c),abs(a+up-2*c); p=a if pa<=pb and pa<=pc else (up if pb<=pc else c)
            cur[x]=(line[x]+p)&255
        out[y]=cur; prev=cur
    return out
r=json.load(open(sys.argv[2]))
d=[x for x in r['disagreements'] if x['tract']!=x['engine'] or x['max_lsb']>2]
s=ort.InferenceSession(sys.argv[1]+'/model.int8.onnx'); inp=s.get_inputs()[0]
from onnx.reference import ReferenceEvaluator
ref=ReferenceEvaluator(sys.argv[1]+'/model.int8.onnx')
names=['angry','disgusted','fearful','happy','neutral','sad','surprised']
for x in d:
    img=png_gray(x['path']).astype(np.float32)/255.0
    shape=[1 if not isinstance(v,int) else v for v in inp.shape]
    out=s.run(None,{inp.name:img.reshape(shape)})[0].ravel()
    spec=ref.run(None,{inp.name:img.reshape(shape)})[0].ravel()
    print('/'.join(x['path'].split('/')[-2:]),'tract',x['tract'],'engine',x['engine'],'ort',names[int(out.argmax())],'reference',names[int(spec.argmax())],'lsb',x['max_lsb'])
    print('  ort      ',np.round(out,3)); print('  reference',np.round(spec,3))
