facedistChunk({{ chunk }}, {{ data|tojson }});
