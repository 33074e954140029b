#!/bin/sh
# Regenerates the licence-free test videos of the demo mode (CC0: they are drawn by
# ffmpeg's lavfi sources, nothing is copied). Needs Debian's ffmpeg.
#
# demo.webm: 60 s, the first item of a demo room started from the watch page, and the video
# of a room made through the API (the README's example).
# demo-1.webm, demo-2.webm: 20 s "episodes" in two other colours, queued after it, so that the
# end of one item and the next can be tried without waiting a minute.
#
# All 480x270, 25 fps, VP9 with a keyframe every 2 s (every browser plays it), no sound.
# The moving parts (the progress bar along the bottom and the square) are overlays:
# overlay evaluates its position for every frame, while drawbox evaluates its
# geometry once, where `t` is the line thickness rather than the time.
set -eu
cd "$(dirname "$0")"
MONO=/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf
SANS=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

# make OUTPUT SECONDS BACKGROUND BAR LABEL
make() {
    out=$1 dur=$2 background=$3 bar=$4 label=$5
    ffmpeg -hide_banner -loglevel error -y \
        -f lavfi -i "color=c=$background:size=480x270:rate=25:duration=$dur" \
        -f lavfi -i "color=c=$bar:size=480x12:rate=25:duration=$dur" \
        -f lavfi -i "color=c=0xffb74d:size=40x40:rate=25:duration=$dur" \
        -filter_complex "[0][1]overlay=x=W*t/$dur-w:y=H-h[bar];\
[bar][2]overlay=x=mod(t*120\,W-w):y=60,\
drawtext=fontfile=$MONO:text='%{pts\:hms}':fontsize=44:fontcolor=white:x=(w-tw)/2:y=(h-th)/2+30,\
drawtext=fontfile=$SANS:text='$label  frame %{frame_num}':fontsize=18:fontcolor=0xb0bec5:x=(w-tw)/2:y=20" \
        -c:v libvpx-vp9 -b:v 0 -crf 42 -g 50 -deadline good -cpu-used 4 -row-mt 1 \
        -metadata title="$label (CC0)" "$out"
}

make demo.webm 60 0x1d2a3a 0x4fc3f7 "syncplayd demo"
make demo-1.webm 20 0x2a1d3a 0xce93d8 "Episode 1 of 2"
make demo-2.webm 20 0x1d3a2a 0x81c784 "Episode 2 of 2"
