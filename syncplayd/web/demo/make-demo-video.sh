#!/bin/sh
# Regenerates demo.webm, the licence-free test video of the demo mode (CC0: it is
# drawn by ffmpeg's lavfi sources, nothing is copied). Needs Debian's ffmpeg.
# 60 s, 480x270, 25 fps, VP9 with a keyframe every 2 s (every browser plays it).
#
# The moving parts (the progress bar along the bottom and the square) are overlays:
# overlay evaluates its position for every frame, while drawbox evaluates its
# geometry once, where `t` is the line thickness rather than the time.
set -eu
cd "$(dirname "$0")"
DUR=60
MONO=/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf
SANS=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "color=c=0x1d2a3a:size=480x270:rate=25:duration=$DUR" \
    -f lavfi -i "color=c=0x4fc3f7:size=480x12:rate=25:duration=$DUR" \
    -f lavfi -i "color=c=0xffb74d:size=40x40:rate=25:duration=$DUR" \
    -filter_complex "[0][1]overlay=x=W*t/$DUR-w:y=H-h[bar];\
[bar][2]overlay=x=mod(t*120\,W-w):y=60,\
drawtext=fontfile=$MONO:text='%{pts\:hms}':fontsize=44:fontcolor=white:x=(w-tw)/2:y=(h-th)/2+30,\
drawtext=fontfile=$SANS:text='syncplayd demo  frame %{frame_num}':fontsize=18:fontcolor=0xb0bec5:x=(w-tw)/2:y=20" \
    -c:v libvpx-vp9 -b:v 0 -crf 42 -g 50 -deadline good -cpu-used 4 -row-mt 1 \
    -metadata title="syncplayd demo (CC0)" demo.webm
