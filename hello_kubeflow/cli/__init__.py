"""What the invoke tasks call: checked options, settings, dispatch by mode, output."""
