"""Operations on label arrays and encoded labels: plain functions, no I/O beyond bytes in and out."""
