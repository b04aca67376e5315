; JSON has no hole markers.
