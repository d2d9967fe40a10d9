"""What every app of the project shares and no app owns: the task names and the append-only rule."""
