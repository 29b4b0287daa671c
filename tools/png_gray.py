"""8-bit grayscale PNG decoding with numpy and zlib alone (FER2013's files), so that the
parity scripts beside it need no imaging package in CI's virtual environment."""
import struct, zlib
import numpy as np


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
