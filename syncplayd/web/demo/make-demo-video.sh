#!/bin/sh
# Regenerates demo.webm, the licence-free test video of the demo mode (CC0: it is
# drawn by ffmpeg's lavfi sources, nothing is copied). Needs Debian's ffmpeg.
# 60 s, 480x270, 25 fps, VP9 with a keyframe every 2 s (every browser plays it).
set -eu
cd "$(dirname "$0")"
DUR=60
MONO=/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf
SANS=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "color=c=0x1d2a3a:size=480x270:rate=25:duration=$DUR" \
    -vf "drawbox=x=0:y=ih-12:w=iw*t/$DUR:h=12:color=0x4fc3f7:t=fill,\
drawbox=x=mod(t*120\,iw-40):y=60:w=40:h=40:color=0xffb74d:t=fill,\
drawtext=fontfile=$MONO:text='%{pts\:hms}':fontsize=44:fontcolor=white:x=(w-tw)/2:y=(h-th)/2+30,\
drawtext=fontfile=$SANS:text='syncplayd demo  frame %{frame_num}':fontsize=18:fontcolor=0xb0bec5:x=(w-tw)/2:y=20" \
    -c:v libvpx-vp9 -b:v 0 -crf 42 -g 50 -deadline good -cpu-used 4 -row-mt 1 \
    -metadata title="syncplayd demo (CC0)" demo.webm
